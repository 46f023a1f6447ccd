from packhouse.cli.main import main

main()

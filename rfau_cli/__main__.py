from rfau_cli.cli import main

main()

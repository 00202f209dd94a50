from newsletter.cli.main import main

main()

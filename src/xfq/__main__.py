from xfq.cli import main

main()

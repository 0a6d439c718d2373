from urbanpulse.cli import main

main()

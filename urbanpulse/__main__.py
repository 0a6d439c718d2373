from urbanpulse.cli import app

app()

from boxoffice.entrypoints.cli import app

app()

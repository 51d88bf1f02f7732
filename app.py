from whistle import create_app

app = create_app()

from moorage.compose.cli import entry

entry()

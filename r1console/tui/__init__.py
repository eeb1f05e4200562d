"""The Textual console. Screens and widgets render state and post intents; all I/O runs in
workers that post typed, past-tense messages (tui/messages.py). Nothing outside this package
imports Textual."""

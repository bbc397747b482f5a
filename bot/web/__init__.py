"""The read-only web board (issue #15): another adapter — pages instead of chat messages.

Imported by `salesbot serve` only (`bot.app.default_components`); `salesbot chat` never loads jinja2.
"""

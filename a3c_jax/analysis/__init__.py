"""Reading runs back: curves, tables, figures, saved policies and videos."""

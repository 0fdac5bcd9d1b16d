"""Outputs people read: field reference, figures, HTML report, Excel workbook."""

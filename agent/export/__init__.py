"""Results that travel: DICOM SEG/SR, the cited draft report (Markdown, PDF), ``--out`` folders, de-identification."""

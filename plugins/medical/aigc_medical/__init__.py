"""aigc-medical: the medical imaging plugin of aigc-run.

It provides the ``scans`` dataset source (built-in phantom chest scans, MedMNIST-style
``.npz`` files, DICOM files and series, NIfTI volumes, folders of PNG/JPEG scans), the
``normalize-intensity`` preprocessor (``center-crop`` is the engine's own), the
``intensity-plausibility`` and ``memorisation`` quality filters, the ``dicom`` writer
(Secondary Capture, no patient data, marked synthetic), and the ``medical`` scenario. The
hooks live in ``aigc_medical.plugin``.
"""

__version__ = "0.1.0"

"""Expert models behind the tools: detectors, segmenters, classifiers, registration.

Nothing here loads a model at import.  Heavy libraries (torch, ultralytics, segment-anything)
are imported inside the backend that needs them.
"""

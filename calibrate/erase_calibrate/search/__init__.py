"""The calibrator: base answers, the Optuna search, selection and the profile it writes."""

"""Shipped model artifacts (installed as the package data `audit.classifiers`)."""

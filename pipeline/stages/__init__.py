"""Reusable pipeline stages (decode, encode, ...); model stages live beside their jobs."""

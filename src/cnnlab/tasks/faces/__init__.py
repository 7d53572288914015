"""Faces: detect, embed, enroll, identify and verify people."""

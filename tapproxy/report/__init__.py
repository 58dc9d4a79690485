"""Rendering captures and analyses for people and tools: terminal text, JSON."""

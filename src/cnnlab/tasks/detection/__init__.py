"""Object detection: a grid of cells that each predict boxes, objectness and classes (YOLO-style)."""

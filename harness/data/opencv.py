"""OpenCV, configured once per process before any use: every module here imports cv2 from this one.

OpenCV's own thread pool is turned off. DataLoader workers are the parallelism, so the pool would only oversubscribe
the cores; and a pool that exists when a worker is forked can hang the worker at its first OpenCV call."""
import cv2

cv2.setNumThreads(0)

__all__ = ["cv2"]

"""Deployment: fuse ACBs into plain convs, write stock-mmdet files, export."""

"""mxfd.client"""

"""mxfd.io"""

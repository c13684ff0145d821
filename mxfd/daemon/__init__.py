"""mxfd.daemon"""

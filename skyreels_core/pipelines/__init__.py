"""skyreels_core.pipelines"""

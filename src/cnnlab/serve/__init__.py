"""`cnnlab serve`: a trained run as an HTTP service (FastAPI + uvicorn), with a page at `/`.

`create_app(adapter, settings)` builds the app; `cnnlab.serve.adapters.load_adapter(run_dir, backend)` gives the
adapter of the run's task. Imports no training code.
"""

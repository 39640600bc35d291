"""The run report: building it from a trace or a Run, text/JSON/HTML, and the agentsteps command."""

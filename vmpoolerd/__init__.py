"""vmpoolerd: pools of ready vSphere VMs behind vmpooler's REST API."""

from twisted.application.service import ServiceMaker

vmpoolerd = ServiceMaker(
    "vmpoolerd", "vmpoolerd.tap", "Pools of ready vSphere VMs (vmpooler's API)", "vmpoolerd")

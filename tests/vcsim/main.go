// Command vcsim serves a simulated vCenter (govmomi's simulator) for
// vmpoolerd's tests and demo.
//
// It builds the inventory described by a JSON file (-inventory), listens
// over HTTPS with a self-signed certificate (-listen), prints one line
// "VCSIM_URL=https://HOST:PORT/sdk" on stdout once it is ready, and runs
// until SIGTERM or SIGINT. SIGUSR1 toggles a "hang" mode in which requests
// block until the mode is toggled off again (a vCenter that stops
// answering). Any user name and password log in.
//
// On top of the simulator it emulates guests: a VM that has been powered on
// for the boot delay reports its own name as guest.hostName and the guest IP
// as guest.ipAddress (summary.guest follows); a powered-off VM reports none.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Inventory is the JSON schema of -inventory. Paths are relative to the
// datacenter's vm folder and use "/" between folders.
type Inventory struct {
	Datacenter    string         `json:"datacenter"`      // default "DC0"
	Cluster       string         `json:"cluster"`         // default "DC0_C0"
	Hosts         int            `json:"hosts"`           // hosts in the cluster, default 3
	HostUsage     []HostUsage    `json:"host_usage"`      // quickStats per host, by index
	ResourcePools []string       `json:"resource_pools"`  // children of the cluster's root pool
	Templates     []Template     `json:"templates"`       // e.g. "Templates/debian/debian-7"
	Folders       []string       `json:"folders"`         // pool folders, e.g. "Pools/debian-7"
	VMs           []VMGroup      `json:"vms"`             // VMs that already exist
	CloneDelayMs  int            `json:"clone_delay_ms"`  // delay of CloneVM_Task
	BootDelayMs   int            `json:"boot_delay_ms"`   // power-on to guest hostname
	GuestIP       string         `json:"guest_ip"`        // default 127.0.0.1
	GuestHostName string         `json:"guest_hostname"`  // default: each VM's name
	NoHostName    bool           `json:"no_hostname"`     // booted guests report an IP, never a hostname
	MethodDelayMs map[string]int `json:"method_delay_ms"` // any other SOAP method
	SessionIdle   string         `json:"session_idle"`    // e.g. "2s": idle sessions expire
	IdleTimeout   string         `json:"idle_timeout"`    // e.g. "1s": idle connections are closed
}

// HostUsage sets a host's summary.quickStats (MHz and MB in use).
type HostUsage struct {
	CPU    int32 `json:"cpu"`
	Memory int32 `json:"memory"`
}

// Template is a VM under the vm folder; a real template unless Template is false.
type Template struct {
	Path     string `json:"path"`
	Template *bool  `json:"template"`
}

// VMGroup creates VMs in a folder: the given names, then Count more named
// Prefix-000, Prefix-001...
type VMGroup struct {
	Folder  string   `json:"folder"`
	Names   []string `json:"names"`
	Count   int      `json:"count"`
	Prefix  string   `json:"prefix"`
	PowerOn bool     `json:"power_on"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	inventory := flag.String("inventory", "", "inventory JSON file (default: a minimal one)")
	cloneDelay := flag.Int("clone-delay", -1, "CloneVM_Task delay in ms (overrides the JSON)")
	bootDelay := flag.Int("boot-delay", -1, "guest boot delay in ms (overrides the JSON)")
	guestIP := flag.String("guest-ip", "", "IP address guests report (overrides the JSON)")
	sessionIdle := flag.Duration("session-idle", 0, "expire sessions idle this long (overrides the JSON)")
	flag.Parse()

	inv := Inventory{Datacenter: "DC0", Cluster: "DC0_C0", Hosts: 3, GuestIP: "127.0.0.1"}
	if *inventory != "" {
		data, err := os.ReadFile(*inventory)
		check(err)
		check(json.Unmarshal(data, &inv))
	}
	if *cloneDelay >= 0 {
		inv.CloneDelayMs = *cloneDelay
	}
	if *bootDelay >= 0 {
		inv.BootDelayMs = *bootDelay
	}
	if *guestIP != "" {
		inv.GuestIP = *guestIP
	}
	if *sessionIdle > 0 {
		inv.SessionIdle = sessionIdle.String()
	}
	if inv.SessionIdle != "" {
		d, err := time.ParseDuration(inv.SessionIdle)
		check(err)
		simulator.SessionIdleTimeout = d
	}

	model := simulator.VPX()
	model.Host = 0 // no standalone host
	model.ClusterHost = inv.Hosts
	model.Machine = 0
	model.Portgroup = 0
	check(model.Create())
	defer model.Remove()

	model.Service.Listen = &url.URL{Host: *listen}
	model.Service.TLS = new(tls.Config)
	server := model.Service.NewServer()
	defer server.Close()

	ctx := context.Background()
	client, err := govmomi.NewClient(ctx, server.URL, true)
	check(err)
	check(populate(ctx, client, &inv))
	check(client.Logout(ctx))

	// Delays apply from now on, not to populating.
	delays := map[string]int{"CloneVM_Task": inv.CloneDelayMs}
	for method, ms := range inv.MethodDelayMs {
		delays[method] += ms
	}
	model.DelayConfig.MethodDelay = delays

	// Connection settings and hang mode: set before anyone knows the address.
	if inv.IdleTimeout != "" {
		server.Config.IdleTimeout, err = time.ParseDuration(inv.IdleTimeout)
		check(err)
	}
	var hang atomic.Bool
	handler := server.Config.Handler
	server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for hang.Load() {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		handler.ServeHTTP(w, r)
	})

	go emulateGuests(time.Duration(inv.BootDelayMs)*time.Millisecond, inv.GuestIP,
		inv.GuestHostName, inv.NoHostName)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)

	u := *server.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\n", u.String()) // os.Stdout is unbuffered: no flush needed

	for sig := range signals {
		if sig != syscall.SIGUSR1 {
			hang.Store(false) // let blocked requests finish: Close waits for them
			return            // deferred calls close the server and remove its files
		}
		hang.Store(!hang.Load())
		log.Printf("vcsim: hang mode %v", hang.Load())
	}
}

// populate renames the model's datacenter and cluster, then creates the
// resource pools, folders, templates and VMs of the inventory.
func populate(ctx context.Context, c *govmomi.Client, inv *Inventory) error {
	finder := find.NewFinder(c.Client, true)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	cluster, err := finder.ClusterComputeResource(ctx, "DC0_C0")
	if err != nil {
		return err
	}
	if err = rename(ctx, dc.Common, inv.Datacenter); err != nil {
		return err
	}
	if err = rename(ctx, cluster.Common, inv.Cluster); err != nil {
		return err
	}

	hosts, err := cluster.Hosts(ctx)
	if err != nil {
		return err
	}
	for i, usage := range inv.HostUsage {
		if i < len(hosts) {
			h := simulator.Map.Get(hosts[i].Reference()).(*simulator.HostSystem)
			simulator.Map.WithLock(h, func() {
				h.Summary.QuickStats.OverallCpuUsage = usage.CPU
				h.Summary.QuickStats.OverallMemoryUsage = usage.Memory
			})
		}
	}

	pool, err := cluster.ResourcePool(ctx)
	if err != nil {
		return err
	}
	for _, name := range inv.ResourcePools {
		if _, err = pool.Create(ctx, name, types.DefaultResourceConfigSpec()); err != nil {
			return err
		}
	}

	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	made := map[string]*object.Folder{"": folders.VmFolder}
	var mkdirs func(p string) (*object.Folder, error)
	mkdirs = func(p string) (*object.Folder, error) {
		p = strings.Trim(p, "/")
		if f, ok := made[p]; ok {
			return f, nil
		}
		dir, name := path.Split(p)
		parent, err := mkdirs(dir)
		if err != nil {
			return nil, err
		}
		f, err := parent.CreateFolder(ctx, name)
		made[p] = f
		return f, err
	}
	for _, p := range inv.Folders {
		if _, err = mkdirs(p); err != nil {
			return err
		}
	}

	create := func(p string, template, powerOn bool) error {
		dir, name := path.Split(p)
		folder, err := mkdirs(dir)
		if err != nil {
			return err
		}
		return createVM(ctx, folder, pool, name, template, powerOn)
	}
	for _, t := range inv.Templates {
		if err = create(t.Path, t.Template == nil || *t.Template, false); err != nil {
			return err
		}
	}
	for _, g := range inv.VMs {
		names := g.Names
		for i := 0; i < g.Count; i++ {
			names = append(names, fmt.Sprintf("%s-%03d", g.Prefix, i))
		}
		for _, name := range names {
			if err = create(path.Join(g.Folder, name), false, g.PowerOn); err != nil {
				return err
			}
		}
	}
	return nil
}

func rename(ctx context.Context, c object.Common, name string) error {
	if old, err := c.ObjectName(ctx); err != nil || old == name {
		return err
	}
	task, err := c.Rename(ctx, name)
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// createVM creates a VM with a SCSI controller and a 1 MB disk on LocalDS_0.
func createVM(ctx context.Context, folder *object.Folder, pool *object.ResourcePool, name string, template, powerOn bool) error {
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return err
	}
	disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
		"[LocalDS_0] "+name+"/disk1.vmdk")
	disk.CapacityInKB = 1024
	devices = append(devices, scsi, disk)

	config := types.VirtualMachineConfigSpec{
		Name:    name,
		GuestId: string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		Files:   &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
	}
	if config.DeviceChange, err = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd); err != nil {
		return err
	}
	task, err := folder.CreateVM(ctx, config, pool, nil)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return err
	}
	vm := object.NewVirtualMachine(folder.Client(), info.Result.(types.ManagedObjectReference))
	if template {
		return vm.MarkAsTemplate(ctx)
	}
	if powerOn {
		task, err = vm.PowerOn(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
	}
	return err
}

// emulateGuests plays VMware Tools: every VM powered on for at least boot
// reports its name (or hostname, when set; none with noHostName, as a
// template that never sets it) and ip; every powered-off VM reports nothing. Changes go through Map.Update, so property collectors
// and filters see them.
func emulateGuests(boot time.Duration, ip string, hostname string, noHostName bool) {
	for range time.Tick(50 * time.Millisecond) {
		for _, e := range simulator.Map.All("VirtualMachine") {
			vm := e.(*simulator.VirtualMachine)
			simulator.Map.WithLock(vm, func() {
				on := vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
				booted := on && vm.Summary.Runtime.BootTime != nil &&
					time.Since(*vm.Summary.Runtime.BootTime) >= boot
				name, addr, tools := "", "", types.VirtualMachineToolsRunningStatusGuestToolsNotRunning
				if booted {
					name, addr, tools = vm.Name, ip, types.VirtualMachineToolsRunningStatusGuestToolsRunning
					if hostname != "" {
						name = hostname
					}
					if noHostName {
						name = ""
					}
				}
				if vm.Guest.HostName == name && vm.Guest.IpAddress == addr {
					return
				}
				simulator.Map.Update(vm, []types.PropertyChange{
					{Name: "guest.hostName", Val: name},
					{Name: "guest.ipAddress", Val: addr},
					{Name: "guest.toolsRunningStatus", Val: string(tools)},
					{Name: "summary.guest.hostName", Val: name},
					{Name: "summary.guest.ipAddress", Val: addr},
					{Name: "summary.guest.toolsRunningStatus", Val: string(tools)},
				})
			})
		}
	}
}

func check(err error) {
	if err != nil {
		log.Fatalf("vcsim: %v", err)
	}
}

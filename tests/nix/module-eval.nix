# Test fixture, not part of the product: evaluates nix/module.nix against
# tests/nix/stub-lib.nix for one daemon and three services, and checks the
# systemd units it renders (run by tests/nix/nix_test.cpp as
# `nix-instantiate --eval --strict`; a failed check throws with its name).
let
  lib = import ./stub-lib.nix;
  pkgs = { nucleus = { outPath = "/nix/store/0c7c9gfyhs4n2zhh2fdxkmjyc3bw2d4v-nucleus-0.1.0"; }; };
  module = import ../../nix/module.nix;
  manifest = "/nix/store/1b2v0pjbx1sgj9jxh5gyf1ik7hbq8cni-web-closure.json";

  settings = {
    daemon.enable = true;
    services.web = {
      rootfs = manifest;
      command = [ "python3" "-m" "http.server" "8080" ];
      environment = { GREETING = "100% $HOME"; };
      limits = { memory = "256M"; cpus = "0.5"; };
      policies.seccompProfile = ./seccomp-fixture.json;
      network = { mode = "bridge"; publish = [ "8080:8080" ]; allowDomains = [ "api.example.com" ]; };
      health.cmd = "wget -q -O /dev/null http://127.0.0.1:8080/";
      secrets.db = "/run/keys/db";
    };
    services.worker = {
      rootfs = manifest;
      restart = "no";
      watchdogSec = null;
      policies = { capsPolicy = ./seccomp-fixture.json; capsPolicySha256 = "ab"; };
    };
    services.off = { enable = false; rootfs = manifest; };
  };

  options = (module { config = { }; inherit lib pkgs; }).options;
  filled = lib.applyOptions "services" options { services = { nucleus = settings; }; };
  rendered = (module { config = filled; inherit lib pkgs; }).config;
  units = rendered.systemd.services;
  web = units.nucleus-web.serviceConfig;
  worker = units.nucleus-worker.serviceConfig;
  daemon = units.nucleus-daemon.serviceConfig;

  # Substring search (the regex built from `part` must not carry string context).
  contains = text: part: builtins.length (builtins.split (builtins.unsafeDiscardStringContext (builtins.replaceStrings
    [ "\\" "." "*" "+" "?" "[" "]" "(" ")" "{" "}" "|" "^" "$" ] [ "\\\\" "\\." "\\*" "\\+" "\\?" "\\[" "\\]" "\\(" "\\)" "\\{" "\\}" "\\|" "\\^" "\\$" ] part)) text) > 1;
  check = name: cond: if cond then name else throw "module-eval: ${name}";
  seccompSha = builtins.hashFile "sha256" ./seccomp-fixture.json;
in
[
  (check "a unit per enabled service, and the daemon's" (builtins.attrNames units == [ "nucleus-daemon" "nucleus-web" "nucleus-worker" ]))
  (check "production mode on the closure" (contains web.ExecStart "nucleus run --service-mode production --name web --rootfs-closure ${manifest} --verify-rootfs-attestation"))
  (check "the service's own cgroup as the parent" (contains web.ExecStart "--cgroup-parent system.slice/nucleus-web.service"))
  (check "limits" (contains web.ExecStart "--memory 256M --cpus 0.5"))
  (check "the policy pinned by the file's hash" (contains web.ExecStart "--seccomp-profile ${./seccomp-fixture.json} --seccomp-profile-sha256 ${seccompSha}"))
  (check "a given hash is used as given" (contains worker.ExecStart "--caps-policy-sha256 ab"))
  (check "network and egress" (contains web.ExecStart "--network bridge --allow-domain api.example.com -p 8080:8080"))
  (check "health probe" (contains web.ExecStart "--health-cmd 'wget -q -O /dev/null http://127.0.0.1:8080/' --health-interval 30s"))
  (check "restart and sd-notify" (contains web.ExecStart "--restart on-failure --sd-notify healthy"))
  (check "secrets through systemd credentials" (contains web.ExecStart "--secret %d/db:db" && web.LoadCredential == [ "db:/run/keys/db" ]))
  (check "% and $ stay literal for systemd" (contains web.ExecStart "-e 'GREETING=100%% $$HOME'"))
  (check "the command after --" (contains web.ExecStart "-- python3 -m http.server 8080"))
  (check "no command: the entrypoint" (!(contains worker.ExecStart " -- ")))
  (check "Type=notify with a watchdog" (web.Type == "notify" && web.NotifyAccess == "main" && web.WatchdogSec == "60s"))
  (check "no watchdog when null" (!(worker ? WatchdogSec)))
  (check "restart no: systemd does not restart either" (worker.Restart == "no" && web.Restart == "on-failure"))
  (check "services may create cgroups" (web.Delegate == "yes"))
  (check "the daemon's unit" (contains daemon.ExecStart "nucleus-0.1.0/bin/nucleus daemon --socket /run/nucleus/nucleus.sock --state-dir /var/lib/nucleus --socket-group nucleus"
    && daemon.Delegate == "yes" && daemon.KillMode == "process"))
  (check "the socket's group exists" (rendered.users.groups ? nucleus))
  (check "defaults filled" (filled.services.nucleus.services.worker.limits.memory == "512M"))
  (check "a bad value is refused" (!(builtins.tryEval (builtins.deepSeq
    (lib.applyOptions "services" options { services.nucleus.services.bad = { rootfs = manifest; network.mode = "host"; }; }) true)).success))
]

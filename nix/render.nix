# What nixosModules.default renders, as a plain function of its settings,
# so that it can be evaluated (and tested, tests/nix/module-eval.nix)
# without NixOS: settings in, systemd unit attribute sets out.
#
# Uses from lib: concatStringsSep, escapeShellArg, mapAttrsToList,
# optional, optionals, optionalAttrs. tests/nix/stub-lib.nix implements
# exactly these.
{ lib }:

let
  inherit (lib) concatStringsSep escapeShellArg mapAttrsToList optional optionals optionalAttrs;

  # systemd reads ExecStart= itself (systemd.service(5), "Command lines"):
  # quotes as a shell would, and % (specifiers) and $ (variables) doubled to
  # stay literal. The secrets' own "%d" (the credentials directory) is the
  # one specifier meant, and is written after this escaping.
  systemdArg = a: builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (escapeShellArg a);
  execStart = args: concatStringsSep " " (map (a:
    if builtins.isAttrs a then a.specifier else systemdArg a) args);

  flag = name: value: [ "--${name}" (toString value) ];
  flagIf = cond: name: value: optionals cond (flag name value);
  maybe = name: value: optionals (value != null) (flag name value);

  # A policy file pinned by its hash: the one given, or the file's own at
  # evaluation time (builtins.hashFile), so the unit names what was reviewed.
  policy = name: file: sha256:
    optionals (file != null) (flag name "${file}"
      ++ flag "${name}-sha256" (if sha256 != null then sha256 else builtins.hashFile "sha256" file));

  # The argument list of `nucleus run` for one service.
  serviceArgs = { package, name, service }:
    let s = service; in
    [ "${package}/bin/nucleus" "run" "--service-mode" "production" "--name" name ]
    ++ flag "rootfs-closure" s.rootfs
    ++ optional s.verifyRootfs "--verify-rootfs-attestation"
    ++ flag "cgroup-parent" "system.slice/nucleus-${name}.service"
    ++ maybe "user" s.user
    ++ maybe "workdir" s.workdir
    ++ flag "memory" s.limits.memory
    ++ maybe "memory-high" s.limits.memoryHigh
    ++ maybe "cpus" s.limits.cpus
    ++ maybe "pids" s.limits.pids
    ++ maybe "tmpfs-size" s.limits.tmpfsSize
    ++ policy "seccomp-profile" s.policies.seccompProfile s.policies.seccompProfileSha256
    ++ policy "caps-policy" s.policies.capsPolicy s.policies.capsPolicySha256
    ++ policy "landlock-policy" s.policies.landlockPolicy s.policies.landlockPolicySha256
    ++ flag "network" s.network.mode
    ++ builtins.concatMap (d: flag "allow-domain" d) s.network.allowDomains
    ++ builtins.concatMap (p: [ "-p" p ]) s.network.publish
    ++ optionals (s.health.cmd != null) (flag "health-cmd" s.health.cmd ++ flag "health-interval" s.health.interval)
    ++ flag "restart" s.restart
    ++ flag "sd-notify" "healthy"
    ++ builtins.concatMap (n: [ "--secret" { specifier = "%d/${n}:${n}"; } ]) (builtins.attrNames s.secrets)
    ++ builtins.concatMap (k: [ "-e" "${k}=${s.environment.${k}}" ]) (builtins.attrNames s.environment)
    ++ s.extraArgs
    ++ optionals (s.command != [ ]) ([ "--" ] ++ s.command);
in
{
  inherit serviceArgs execStart;

  # `nucleus daemon` as a system service: it creates cgroups for its
  # sandboxes (Delegate=yes) and they outlive a restart of the daemon,
  # which re-adopts them (KillMode=process).
  daemonUnit = { package, daemon }: {
    description = "Nucleus sandbox daemon";
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" ];
    serviceConfig = {
      ExecStart = execStart ([ "${package}/bin/nucleus" "daemon" ]
        ++ flag "socket" daemon.socket
        ++ flag "state-dir" daemon.stateDir
        ++ flag "socket-group" daemon.group
        ++ maybe "max-sandboxes" daemon.maxSandboxes
        ++ daemon.extraArgs);
      Delegate = "yes";
      KillMode = "process";
      Restart = "on-failure";
      RuntimeDirectory = "nucleus";
      RuntimeDirectoryPreserve = "yes";
    };
  };

  # One systemd unit per service: Type=notify, with a watchdog the runtime
  # feeds while the health probe passes; secrets as systemd credentials
  # (never in the store), handed to the sandbox at /run/secrets/NAME.
  serviceUnit = args@{ package, name, service }:
    let s = service; in
    {
      description = "Nucleus service ${name}";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = execStart (serviceArgs args);
        Delegate = "yes";
        Restart = if s.restart == "no" then "no" else "on-failure";
        RestartSec = "1s";
        LoadCredential = mapAttrsToList (n: path: "${n}:${toString path}") s.secrets;
      } // optionalAttrs (s.watchdogSec != null) { WatchdogSec = s.watchdogSec; };
    };
}

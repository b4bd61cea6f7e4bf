# nixosModules.default: the nucleus daemon and production services on
# NixOS, declared as a NixOS user declares `containers.<name>` or
# `virtualisation.oci-containers.containers.<name>`.
#
#   services.nucleus.daemon.enable = true;        # nucleus daemon, socket group "nucleus"
#   services.nucleus.services.web = {
#     rootfs = nucleus.lib.mkRootfs { name = "web"; contents = [ pkgs.python3 ]; };
#     command = [ "python3" "-m" "http.server" "8080" ];
#     limits.memory = "256M";
#     network = { mode = "bridge"; publish = [ "8080:8080" ]; };
#     health.cmd = "python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8080\")'";
#   };
#
# Each service becomes systemd unit nucleus-<name>.service running
# `nucleus run --service-mode production --rootfs-closure <manifest> ...`
# (nix/render.nix builds the command line), Type=notify with a watchdog.
# The lib functions used here are listed in tests/nix/stub-lib.nix, which
# evaluates this module's rendering without NixOS.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression mapAttrs' nameValuePair;
  cfg = config.services.nucleus;
  render = import ./render.nix { inherit lib; };

  serviceOptions = { name, ... }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to run this service.";
      };
      rootfs = mkOption {
        type = types.package;
        description = ''
          The service's root filesystem: a closure manifest from
          `nucleus.lib.mkRootfs` (the store read-only, only the closure
          readable and executable inside).
        '';
        example = literalExpression ''nucleus.lib.mkRootfs { name = "web"; contents = [ pkgs.python3 ]; }'';
      };
      command = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "The command and its arguments; empty runs the rootfs's entrypoint.";
      };
      environment = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Environment variables, over the rootfs's own (its PATH among them).";
      };
      user = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "1000:1000";
        description = "UID[:GID] inside the sandbox (default 1000:1000).";
      };
      workdir = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "Working directory inside the sandbox (default: the home directory).";
      };
      verifyRootfs = mkOption {
        type = types.bool;
        default = true;
        description = "Check every store path of the closure against its NAR hash before each start.";
      };
      limits = {
        memory = mkOption {
          type = types.str;
          default = "512M";
          description = "memory.max (production mode requires a memory limit); an OOM kill takes the whole sandbox.";
        };
        memoryHigh = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "memory.high, the throttling threshold.";
        };
        cpus = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "0.5";
          description = "CPU bandwidth in CPUs (cpu.max).";
        };
        pids = mkOption {
          type = types.nullOr types.int;
          default = null;
          description = "pids.max.";
        };
        tmpfsSize = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "Size of /tmp and the home directory (tmpfs, charged to the sandbox's memory).";
        };
      };
      policies = {
        seccompProfile = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = "A seccomp profile in the OCI/Docker JSON format (default: the built-in allowlist).";
        };
        seccompProfileSha256 = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "The profile's SHA-256; default: the file's own at evaluation time, pinned in the unit.";
        };
        capsPolicy = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = "A capability policy (TOML: bounding, ambient).";
        };
        capsPolicySha256 = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "The capability policy's SHA-256 (default: computed at evaluation time).";
        };
        landlockPolicy = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = "A Landlock policy (TOML); it replaces the default rules, the closure's included.";
        };
        landlockPolicySha256 = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "The Landlock policy's SHA-256 (default: computed at evaluation time).";
        };
      };
      network = {
        mode = mkOption {
          type = types.enum [ "none" "bridge" "egress" ];
          default = "none";
          description = ''
            none: only loopback; bridge: a veth on the host bridge with NAT
            and published ports; egress: outbound connections only to
            allowDomains.
          '';
        };
        allowDomains = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "api.example.com" ];
          description = "Names the service may connect to (--allow-domain), in bridge and egress modes.";
        };
        publish = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "8080:80" ];
          description = "Published ports, HOST:CONTAINER[/PROTO] (-p), in bridge mode.";
        };
      };
      health = {
        cmd = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "A command run inside the sandbox; exit 0 means healthy.";
        };
        interval = mkOption {
          type = types.str;
          default = "30s";
          description = "Time between health probes.";
        };
      };
      restart = mkOption {
        type = types.enum [ "no" "on-failure" "always" ];
        default = "on-failure";
        description = "When the runtime restarts the workload; systemd restarts the runtime itself on failure.";
      };
      watchdogSec = mkOption {
        type = types.nullOr types.str;
        default = "60s";
        description = "systemd's WatchdogSec=: the runtime notifies while the service is healthy (null: no watchdog).";
      };
      secrets = mkOption {
        type = types.attrsOf types.path;
        default = { };
        example = literalExpression ''{ db-password = "/run/keys/db-password"; }'';
        description = ''
          Files handed to the sandbox at /run/secrets/NAME (read-only,
          in memory), through systemd credentials: give paths outside the
          store, since store paths are world-readable.
        '';
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Further `nucleus run` flags.";
      };
    };
  };
in
{
  options.services.nucleus = {
    package = mkOption {
      type = types.package;
      default = pkgs.nucleus;
      defaultText = literalExpression "pkgs.nucleus";
      description = "The nucleus package (the flake's overlays.default provides pkgs.nucleus).";
    };
    daemon = {
      enable = mkEnableOption "the nucleus daemon (an HTTP API on a unix socket for agent platforms)";
      socket = mkOption {
        type = types.str;
        default = "/run/nucleus/nucleus.sock";
        description = "The daemon's unix socket.";
      };
      stateDir = mkOption {
        type = types.str;
        default = "/var/lib/nucleus";
        description = "Where the daemon keeps its records and logs.";
      };
      group = mkOption {
        type = types.str;
        default = "nucleus";
        description = "The socket's group: membership is the right to run sandboxes (treat it like docker's).";
      };
      maxSandboxes = mkOption {
        type = types.nullOr types.int;
        default = null;
        description = "At most this many sandboxes at once (--max-sandboxes).";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Further `nucleus daemon` flags.";
      };
    };
    services = mkOption {
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
      description = "Production services, each a systemd unit nucleus-<name>.service.";
    };
  };

  config = {
    users.groups = mkIf cfg.daemon.enable { ${cfg.daemon.group} = { }; };
    systemd.services =
      (mapAttrs' (name: service: nameValuePair "nucleus-${name}"
        (render.serviceUnit { package = cfg.package; inherit name service; }))
        (lib.filterAttrs (_: s: s.enable) cfg.services))
      // lib.optionalAttrs cfg.daemon.enable {
        nucleus-daemon = render.daemonUnit { package = cfg.package; daemon = cfg.daemon; };
      };
    assertions = lib.mapAttrsToList (name: s: {
      assertion = builtins.all (n: builtins.match "[A-Za-z0-9._-]+" n != null) (builtins.attrNames s.secrets);
      message = "services.nucleus.services.${name}.secrets: names must be file names of [A-Za-z0-9._-]";
    }) cfg.services;
  };
}

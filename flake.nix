{
  # Nucleus from Nix:
  #   packages.default     the runtime (nix/package.nix: the CMake build,
  #                        dynamically linked against nixpkgs' libraries)
  #   devShells.default    every build and test dependency
  #   checks               the build, and the unit tests (run in the build sandbox)
  #   overlays.default     pkgs.nucleus
  #   nixosModules.default services.nucleus.daemon and services.nucleus.services.<name>
  #                        (nix/module.nix)
  #   lib.mkRootfs         a store closure as a sandbox's root: its manifest,
  #                        no image, no layers (nix/mk-rootfs.nix)
  #
  # The CI machines are Debian without a Nix daemon; what is checked there,
  # offline, with Debian's nix-bin: every .nix file parses, the module's
  # rendering evaluates against tests/nix/stub-lib.nix, and mk-rootfs.nix
  # builds a real closure in a throw-away store that a sandbox then runs on
  # (tests/nix/). Evaluating this file needs nixpkgs, which those machines
  # cannot fetch.
  description = "Nucleus: a Linux sandbox runtime for agent sandboxes and production services";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      nucleusFor = pkgs: args: pkgs.callPackage ./nix/package.nix ({ src = self; } // args);
      mkRootfsFor = system: import ./nix/mk-rootfs.nix {
        nucleus = self.packages.${system}.default;
        inherit system;
      };
    in
    {
      packages = forAll (pkgs: {
        default = nucleusFor pkgs { };
        nucleus = self.packages.${pkgs.system}.default;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ (nucleusFor pkgs { withTests = true; }) ];
          packages = with pkgs; [ gbenchmark gnuplot clang nix ];
        };
      });

      checks = forAll (pkgs: {
        build = self.packages.${pkgs.system}.default;
        unit-tests = nucleusFor pkgs { withTests = true; };
        # A closure manifest built the way users build theirs.
        rootfs-manifest = (mkRootfsFor pkgs.system) {
          name = "check";
          contents = [ pkgs.pkgsStatic.busybox ];
          entrypoint = "${pkgs.pkgsStatic.busybox}/bin/sh";
        };
      });

      overlays.default = final: prev: {
        nucleus = nucleusFor final { };
      };

      nixosModules.default = { pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      # lib.mkRootfs { name; contents; entrypoint ? null; env ? {}; }: the
      # manifest of contents' closure, built for the contents' own system.
      lib.mkRootfs = args@{ contents, ... }:
        let
          first = builtins.head contents;
          system = if builtins.isAttrs first && first ? system then first.system else "x86_64-linux";
        in
        (mkRootfsFor system) args;
    };
}

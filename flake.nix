{
  # Nucleus from Nix: the runtime (dynamically linked against nixpkgs'
  # libraries; the Debian build in README.md links it statically), a
  # development shell with every build and test dependency, and a minimal
  # static-busybox root filesystem as a store path, for `nucleus run --rootfs`.
  #
  # The CI machines are Debian without Nix, so this file is not exercised by
  # .ci/run; README.md's two commands are the supported set-up.
  description = "Nucleus: a Linux container runtime for agent sandboxes and production services";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      buildDeps = pkgs: with pkgs; [
        asio
        liburing
        libseccomp
        nlohmann_json
        spdlog
        cli11
        tomlplusplus
        http-parser
        libmd
        libmnl
        libnftnl
      ];
    in
    {
      packages = forAll (pkgs: rec {
        nucleus = pkgs.stdenv.mkDerivation {
          pname = "nucleus";
          version = "0.1.0";
          src = self;
          nativeBuildInputs = with pkgs; [ cmake ninja pkg-config ];
          buildInputs = buildDeps pkgs;
          cmakeFlags = [
            "-DNUCLEUS_STATIC=OFF"
            "-DNUCLEUS_TESTS=OFF"
            "-DNUCLEUS_BENCH=OFF"
          ];
          installPhase = ''
            runHook preInstall
            install -Dm755 nucleus $out/bin/nucleus
            runHook postInstall
          '';
          meta = {
            description = "Linux container runtime: agent sandboxes and production services";
            platforms = pkgs.lib.platforms.linux;
            mainProgram = "nucleus";
          };
        };

        # A root filesystem that is a store path: static busybox and its
        # applet links, nothing else (what nucleus-bench builds from Debian's
        # busybox-static).
        rootfs-busybox = pkgs.runCommand "nucleus-rootfs-busybox" { } ''
          mkdir -p $out/bin $out/etc $out/tmp $out/proc $out/dev $out/sys
          cp ${pkgs.pkgsStatic.busybox}/bin/busybox $out/bin/busybox
          for applet in $($out/bin/busybox --list); do
            [ "$applet" = busybox ] || ln -s busybox $out/bin/$applet
          done
          echo 'root:x:0:0:root:/root:/bin/sh' > $out/etc/passwd
          echo 'root:x:0:' > $out/etc/group
        '';

        default = nucleus;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = (buildDeps pkgs) ++ (with pkgs; [
            cmake
            ninja
            pkg-config
            catch2_3
            gbenchmark
            gnuplot
          ]);
        };
      });
    };
}

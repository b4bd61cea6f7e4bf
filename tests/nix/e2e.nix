# Test fixture, not part of the product: a real store closure built without
# nixpkgs, in whatever store the caller points Nix at (tests/nix/nix_test.cpp
# uses a throw-away one: NIX_STORE_DIR under a scratch directory).
#   nucleusDir  a directory holding bin/nucleus (the static build under test)
#   busyboxDir  a directory holding busybox (Debian's static busybox)
# `rootfs` is made by nix/mk-rootfs.nix, the same function lib.mkRootfs is.
{ nucleusDir, busyboxDir, system ? "x86_64-linux" }:

let
  nucleus = builtins.path { path = nucleusDir; name = "nucleus"; };
  bb = builtins.path { path = busyboxDir; name = "busybox-static"; };
  # Nix runs the builder with argv[0] = "busybox", so busybox acts as itself.
  run = name: script: derivation {
    inherit name system;
    builder = "${bb}/busybox";
    args = [ "sh" "-c" script ];
  };
  b = "${bb}/busybox";

  # The root's content: busybox and a few applet links.
  tool = run "tool" ''
    ${b} mkdir -p $out/bin $out/share
    ${b} cp ${b} $out/bin/busybox
    for a in sh cat ls echo id head true sleep; do ${b} ln -s busybox $out/bin/$a; done
    echo inside-the-closure > $out/share/data
  '';
  # A store path nobody's closure holds: the sandbox must not read it.
  outside = run "outside" ''
    echo top-secret > $out
  '';
  mkRootfs = import ../../nix/mk-rootfs.nix { inherit nucleus system; };
in
{
  inherit tool outside;
  rootfs = mkRootfs {
    name = "e2e";
    contents = [ tool ];
    entrypoint = [ "${tool}/bin/sh" "-c" "echo entrypoint says $GREETING" ];
    env = { GREETING = "hello"; };
  };
  # nucleus-bench coldstart --closure: busybox `true`, as the directory rootfs runs it.
  bench = mkRootfs {
    name = "bench";
    contents = [ tool ];
    entrypoint = [ "${tool}/bin/true" ];
  };
}

# The nucleus runtime from this source tree: the CMake build with the same
# dependencies as scripts/install-deps.sh (Asio with io_uring, liburing,
# libseccomp, nlohmann-json, spdlog, CLI11, toml++, http-parser, libmd,
# libmnl, libnftnl),
# dynamically linked against nixpkgs' libraries (the Debian build links
# statically). `doCheck` runs the unit tests, which need no privileges.
{ lib, stdenv, cmake, ninja, pkg-config, asio, liburing, libseccomp, nlohmann_json, spdlog, cli11
, tomlplusplus, http-parser, libmd, libmnl, libnftnl, catch2_3, src, withTests ? false }:

stdenv.mkDerivation {
  pname = "nucleus";
  version = "0.1.0";
  inherit src;
  nativeBuildInputs = [ cmake ninja pkg-config ];
  buildInputs = [ asio liburing libseccomp nlohmann_json spdlog cli11 tomlplusplus http-parser libmd libmnl libnftnl ]
    ++ lib.optional withTests catch2_3;
  cmakeFlags = [
    "-DNUCLEUS_STATIC=OFF"
    "-DNUCLEUS_BENCH=OFF"
    "-DNUCLEUS_TESTS=${if withTests then "ON" else "OFF"}"
  ];
  ninjaFlags = lib.optionals (!withTests) [ "nucleus" ];
  doCheck = withTests;
  # The unit tests only: the others start real sandboxes, which the build
  # sandbox forbids (no user namespaces with full maps, no cgroups).
  checkPhase = ''
    runHook preCheck
    ./tests/unit_tests
    runHook postCheck
  '';
  installPhase = ''
    runHook preInstall
    install -Dm755 nucleus $out/bin/nucleus
    runHook postInstall
  '';
  meta = {
    description = "Linux sandbox runtime for agent sandboxes and production services";
    platforms = lib.platforms.linux;
    mainProgram = "nucleus";
  };
}

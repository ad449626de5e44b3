// The bodies of the fuzz targets (docs/security.md): each feeds arbitrary bytes through one
// parser that reads input written by people or peers, and checks invariants that must hold for
// any input (a success round-trips; an error is a Status, never a crash). They are shared by the
// libFuzzer executables (preset `fuzz`, fuzz/fuzz_main.cc) and by fuzz_regression_test, which
// replays the checked-in corpus and every crash found in the normal build.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
//     return sd2::fuzz::FuzzProtocol(d, n);
//   }
//
// A broken invariant prints what broke and aborts (so libFuzzer records the input as a crash).
#ifndef SD2_FUZZ_TARGETS_H_
#define SD2_FUZZ_TARGETS_H_

#include <cstddef>
#include <cstdint>

namespace sd2::fuzz {

// common/protocol.h: Decode, then every typed Parse, ErrorReply/ReplyStatus, encode round trip.
int FuzzProtocol(const uint8_t* data, size_t size);
// sweeps/sweep.h: ParseSweep, then Expand for specs without [[probe]] (which read files).
int FuzzSweep(const uint8_t* data, size_t size);
// worker/data/manifest.h: ParseManifest with and without allow_outside_root; every accepted
// record's path stays inside the root unless allowed; records round-trip through RecordToJson.
int FuzzManifest(const uint8_t* data, size_t size);
// worker/models/safetensors.h: ParseSafetensors; accepted files convert (ToFloat) and
// round-trip through SerializeSafetensors.
int FuzzSafetensors(const uint8_t* data, size_t size);

}  // namespace sd2::fuzz

#endif  // SD2_FUZZ_TARGETS_H_

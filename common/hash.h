// Hashing for stable identifiers: SHA-256 (FIPS 180-4) and hex helpers.
//
//   std::string key = sd2::Sha256Hex(canonical_json).substr(0, 16);
#ifndef SD2_COMMON_HASH_H_
#define SD2_COMMON_HASH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sd2 {

// Incremental SHA-256. Not thread-safe; one instance per digest.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  std::array<uint8_t, 32> Finish();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string ToHex(const uint8_t* data, size_t n);
// Lower-case hex SHA-256 of `s` (64 characters).
std::string Sha256Hex(std::string_view s);

}  // namespace sd2

#endif  // SD2_COMMON_HASH_H_

#include "worker/models/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/bounded_parse.h"
#include "common/file_util.h"

namespace sd2::worker::models {
namespace {

bool ParseDtype(const std::string& s, Dtype* d) {
  static const std::pair<const char*, Dtype> kNames[] = {
      {"F32", Dtype::kF32}, {"F16", Dtype::kF16}, {"BF16", Dtype::kBF16}, {"F64", Dtype::kF64},
      {"I64", Dtype::kI64}, {"I32", Dtype::kI32}, {"U8", Dtype::kU8}};
  for (const auto& [n, v] : kNames) {
    if (s == n) {
      *d = v;
      return true;
    }
  }
  return false;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

const char* DtypeName(Dtype d) {
  switch (d) {
    case Dtype::kF32:
      return "F32";
    case Dtype::kF16:
      return "F16";
    case Dtype::kBF16:
      return "BF16";
    case Dtype::kF64:
      return "F64";
    case Dtype::kI64:
      return "I64";
    case Dtype::kI32:
      return "I32";
    case Dtype::kU8:
      return "U8";
  }
  return "?";
}

size_t DtypeSize(Dtype d) {
  switch (d) {
    case Dtype::kF32:
    case Dtype::kI32:
      return 4;
    case Dtype::kF16:
    case Dtype::kBF16:
      return 2;
    case Dtype::kF64:
    case Dtype::kI64:
      return 8;
    case Dtype::kU8:
      return 1;
  }
  return 1;
}

int64_t SafeTensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::vector<float> SafeTensor::ToFloat() const {
  size_t n = size_t(numel());
  std::vector<float> out(n);
  const char* p = data.data();
  for (size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case Dtype::kF32:
        std::memcpy(&out[i], p + 4 * i, 4);
        break;
      case Dtype::kF64: {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = float(v);
        break;
      }
      case Dtype::kF16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = HalfToFloat(h);
        break;
      }
      case Dtype::kBF16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        uint32_t bits = uint32_t(h) << 16;
        std::memcpy(&out[i], &bits, 4);
        break;
      }
      case Dtype::kI64: {
        int64_t v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = float(v);
        break;
      }
      case Dtype::kI32: {
        int32_t v;
        std::memcpy(&v, p + 4 * i, 4);
        out[i] = float(v);
        break;
      }
      case Dtype::kU8:
        out[i] = float(static_cast<unsigned char>(p[i]));
        break;
    }
  }
  return out;
}

std::vector<int64_t> SafeTensor::ToInt64() const {
  size_t n = size_t(numel());
  std::vector<int64_t> out(n);
  if (dtype == Dtype::kI64) {
    std::memcpy(out.data(), data.data(), 8 * n);
    return out;
  }
  if (dtype == Dtype::kI32) {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, data.data() + 4 * i, 4);
      out[i] = v;
    }
    return out;
  }
  std::vector<float> f = ToFloat();
  for (size_t i = 0; i < n; ++i) out[i] = int64_t(f[i]);
  return out;
}

void SafetensorsFile::Add(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
                          const void* data) {
  SafeTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.assign(static_cast<const char*>(data), size_t(t.numel()) * DtypeSize(dtype));
  tensors[name] = std::move(t);
}

StatusOr<SafetensorsFile> ParseSafetensors(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 8)
    return DataLossError(what + ": " + std::to_string(bytes.size()) +
                         " bytes, too short for a safetensors header");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  if (n > bytes.size() - 8)
    return DataLossError(what + ": header length " + std::to_string(n) + " exceeds the file (" +
                         std::to_string(bytes.size()) + " bytes)");
  nlohmann::json header;
  try {
    header = ParseJsonBoundedOrThrow(bytes.substr(8, size_t(n)));
  } catch (const nlohmann::json::exception& e) {
    return DataLossError(what + ": header is not JSON: " + e.what());
  }
  if (!header.is_object()) return DataLossError(what + ": header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  SafetensorsFile out;
  std::vector<std::pair<uint64_t, std::pair<uint64_t, std::string>>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return DataLossError(what + ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          return DataLossError(what + ": __metadata__ value of '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string where = what + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      return DataLossError(where + " needs dtype, shape and data_offsets");
    SafeTensor t;
    if (!v["dtype"].is_string() || !ParseDtype(v["dtype"].get<std::string>(), &t.dtype))
      return DataLossError(where + ": unsupported dtype " + v["dtype"].dump());
    if (!v["shape"].is_array()) return DataLossError(where + ": shape is not an array");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t(1) << 40))
        return DataLossError(where + ": bad dimension " + d.dump());
      t.shape.push_back(int64_t(d.get<uint64_t>()));
      // Checked before multiplying: the product must not wrap around.
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > (uint64_t(1) << 40) / dim)
        return DataLossError(where + ": too many elements");
      numel *= dim;
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      return DataLossError(where + ": data_offsets must be two non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      return DataLossError(where + ": data_offsets [" + std::to_string(b) + ", " +
                           std::to_string(e) + "] outside the data (" + std::to_string(data_size) +
                           " bytes)");
    if (e - b != numel * DtypeSize(t.dtype))
      return DataLossError(where + ": " + std::to_string(e - b) + " bytes for shape " +
                           v["shape"].dump() + " of " + DtypeName(t.dtype) + " (expected " +
                           std::to_string(numel * DtypeSize(t.dtype)) + ")");
    t.data.assign(data + b, size_t(e - b));
    if (e > b) ranges.push_back({b, {e, name}});
    out.tensors[name] = std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second.first)
      return DataLossError(what + ": tensors '" + ranges[i - 1].second.second + "' and '" +
                           ranges[i].second.second + "' overlap");
  return out;
}

StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  return ParseSafetensors(bytes, path);
}

std::string SerializeSafetensors(const SafetensorsFile& file) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t off = 0;
  for (const auto& [name, t] : file.tensors) {
    header[name] = {{"dtype", DtypeName(t.dtype)},
                    {"shape", t.shape},
                    {"data_offsets", {off, off + t.data.size()}}};
    off += t.data.size();
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xFF);
  out += h;
  for (const auto& [name, t] : file.tensors) out += t.data;
  return out;
}

Status WriteSafetensors(const std::string& path, const SafetensorsFile& file) {
  return WriteFileAtomic(path, SerializeSafetensors(file));
}

}  // namespace sd2::worker::models

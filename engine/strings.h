// Cat: string concatenation for the engine's messages; Printable: stored bytes shown in one.
// (Debian's Abseil is built with its own absl::string_view, not std::string_view, so absl::StrCat
// does not take the standard views used throughout the engine.)
#ifndef GONGDAI_ENGINE_STRINGS_H_
#define GONGDAI_ENGINE_STRINGS_H_

#include <concepts>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace gongdai {
namespace strings_internal {

inline void Append(std::string& out, std::string_view text) { out.append(text); }
inline void Append(std::string& out, absl::string_view text) {
  out.append(text.data(), text.size());
}
inline void Append(std::string& out, const char* text) { out.append(text); }
inline void Append(std::string& out, const std::string& text) { out.append(text); }
inline void Append(std::string& out, char c) { out.push_back(c); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void Append(std::string& out, T value) {
  out.append(std::to_string(value));
}

}  // namespace strings_internal

template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  (strings_internal::Append(out, parts), ...);
  return out;
}

// absl::string_view of a standard view (Abseil's own type in this build).
inline absl::string_view AbslView(std::string_view text) {
  return absl::string_view(text.data(), text.size());
}

// `text` as given, for an error message that quotes the caller's input: at most `max`
// bytes of it (cut at a UTF-8 character's start) and its length when longer, so that an
// oversized input cannot oversize the error (gRPC carries it in a size-limited trailer).
inline std::string Excerpt(std::string_view text, size_t max = 40) {
  if (text.size() <= max) return std::string(text);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string out(text.substr(0, cut));
  out += "... (";
  out += std::to_string(text.size());
  out += " bytes)";
  return out;
}

// `bytes` as printable ASCII, for a message: any other byte (and the backslash) as \\xNN.
inline std::string Printable(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kDigits[c >> 4];
      out += kDigits[c & 0xf];
    }
  }
  return out;
}

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_STRINGS_H_

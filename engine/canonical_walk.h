// Whether stored protobuf bytes are exactly the deterministic encoding of what they parse
// to, decided in one pass over the bytes against the message type's descriptor. An
// audit checks every journal entry this way (docs/journal-format.md, "Canonical bytes
// and hash"); serializing the parsed entry again to compare costs about twice as much.
// Private to engine/.
#ifndef GONGDAI_ENGINE_CANONICAL_WALK_H_
#define GONGDAI_ENGINE_CANONICAL_WALK_H_

#include <google/protobuf/descriptor.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace gongdai {

class CanonicalWalk {
 public:
  // The rules of `type` and of every message type it holds, read from the descriptors.
  explicit CanonicalWalk(const google::protobuf::Descriptor& type);
  ~CanonicalWalk();
  CanonicalWalk(const CanonicalWalk&) = delete;
  CanonicalWalk& operator=(const CanonicalWalk&) = delete;

  // For `bytes` that have already parsed as the type (the parse checks strings' UTF-8
  // and bounds the nesting, which this walk relies on): true when they are certainly
  // what protobuf's deterministic serialization gives for the parsed message. That holds
  // when fields come in field-number order, each once (a repeated field's elements in one
  // run; a packed one as one non-empty run), at most one member of each oneof, a field
  // without presence only when it is not zero or empty, every varint in its shortest
  // form and in its field's range, the declared wire type, and nested messages likewise.
  // False when the bytes break one of these rules, and also when they hold what this
  // walk does not model (unknown fields, groups, maps, closed enums, fixed-width and
  // floating-point fields): the caller then decides by serializing the parsed message
  // again.
  bool Certifies(std::string_view bytes) const;

 private:
  struct Message;
  bool Walk(const Message& message, const uint8_t* at, const uint8_t* end) const;

  std::vector<std::unique_ptr<Message>> messages_;  // messages_[0] is the walked type
};

}  // namespace gongdai

#endif  // GONGDAI_ENGINE_CANONICAL_WALK_H_

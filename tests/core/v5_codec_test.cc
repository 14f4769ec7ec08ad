// Protocol v5 codec against every byte string of the original implementation (golden vectors),
// protocol v6's CAN FD events against the byte tables of docs/protocol.md, plus decoder robustness:
// byte-by-byte and seeded random splits, errors that name the problem.
#include "core/v5_codec.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace canserver::v5 {
namespace {

using ::testing::HasSubstr;

std::string Hex(absl::string_view spaced) {
  std::string compact;
  for (char c : spaced) {
    if (c != ' ') compact.push_back(c);
  }
  return absl::HexStringToBytes(compact);
}

CanFrame Frame(uint32_t id, std::vector<uint8_t> data, uint8_t flags = 0, uint8_t len = 255) {
  CanFrame f;
  f.id = id;
  f.flags = flags;
  f.len = len == 255 ? static_cast<uint8_t>(data.size()) : len;
  for (size_t i = 0; i < data.size(); ++i) f.data[i] = data[i];
  return f;
}

CanMessage Msg(CanFrame frame, double seconds) {
  frame.timestamp_ns = SecondsToNanos(seconds);
  return CanMessage{frame};
}

PeriodicMessageStart Periodic(int32_t period_ms, int32_t duration_ms, CanFrame frame) {
  return PeriodicMessageStart{period_ms, duration_ms, frame};
}

CanFdMessage FdMsg(CanFrame frame, double seconds) {
  frame.flags |= kCanFlagFd;
  frame.timestamp_ns = SecondsToNanos(seconds);
  return CanFdMessage{frame};
}

PeriodicFdMessageStart PeriodicFd(int32_t period_ms, int32_t duration_ms, CanFrame frame) {
  frame.flags |= kCanFlagFd;
  return PeriodicFdMessageStart{period_ms, duration_ms, frame};
}

std::vector<uint8_t> Bytes(size_t n, uint8_t first, uint8_t step) {
  std::vector<uint8_t> v;
  for (size_t i = 0; i < n; ++i) v.push_back(static_cast<uint8_t>(first + step * i));
  return v;
}

std::string Repeat(absl::string_view hex_byte, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&out, hex_byte, " ");
  return out;
}

struct Golden {
  const char* name;
  Event event;
  std::string hex;
};

// Every byte string listed in the protocol reference, in its order.
const std::vector<Golden>& GoldenVectors() {
  static const auto* vectors = new std::vector<Golden>{
      {"BusRequest(5, 500000)", BusRequest{5, 500000}, "01 05 00 07 a1 20"},
      {"FilterConfig([])", FilterConfig{}, "0a 00"},
      {"FilterConfig(ext 0x1FFFFFFF)", FilterConfig{{CanFilter{0x1FFFFFFF, 0x1FFFFFFF, true}}},
       "0a 01 9f ff ff ff 9f ff ff ff"},
      {"FilterConfig(std 1/0xF)", FilterConfig{{CanFilter{1, 0xF, false}}},
       "0a 01 00 00 00 01 80 00 00 0f"},
      {"FilterConfig(either 1/0xF)", FilterConfig{{CanFilter{1, 0xF, std::nullopt}}},
       "0a 01 00 00 00 01 00 00 00 0f"},
      {"BusResponse", BusResponse{"Virtual bus channel unittest"},
       "02 1c 56 69 72 74 75 61 6c 20 62 75 73 20 63 68 61 6e 6e 65 6c 20 75 6e 69 74 74 65 73 74"},
      {"CanMessage std 0x100", Msg(Frame(0x100, {1, 2, 3, 4}), 1470925506.0621243),
       "03 41 d5 eb 22 b0 83 f9 d8 00 00 01 00 04 00 01 02 03 04 00 00 00 00"},
      {"CanMessage ext 0xabcdef",
       Msg(Frame(0xabcdef, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kCanFlagExtended), 0),
       "03 00 00 00 00 00 00 00 00 00 ab cd ef 08 01 ff ff ff ff ff ff ff ff"},
      {"CanMessage remote std 0x123", Msg(Frame(0x123, {}, kCanFlagRemote, 8), 0),
       "03 00 00 00 00 00 00 00 00 00 00 01 23 08 02 00 00 00 00 00 00 00 00"},
      {"CanMessage error frame", Msg(Frame(0, {}, kCanFlagExtended | kCanFlagError), 0),
       "03 00 00 00 00 00 00 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 00"},
      {"TransmitSuccess", TransmitSuccess{}, "04"},
      {"TransmitFail", TransmitFail{}, "05"},
      {"RemoteException", RemoteException{"This is an error"},
       "06 10 54 68 69 73 20 69 73 20 61 6e 20 65 72 72 6f 72"},
      {"PeriodicMessageStart std", Periodic(10, 10000, Frame(0x123, {1, 2, 3, 4, 5, 6, 7, 8})),
       "07 00 00 00 0a 00 00 27 10 00 00 01 23 08 00 01 02 03 04 05 06 07 08"},
      {"PeriodicMessageStart ext", Periodic(100, 0, Frame(0xabcdef, {1, 2, 3}, kCanFlagExtended)),
       "07 00 00 00 64 00 00 00 00 00 ab cd ef 03 01 01 02 03 00 00 00 00 00"},
      {"PeriodicMessageStop", PeriodicMessageStop{0x123}, "08 00 00 01 23"},
      {"ConnectionClosed", ConnectionClosed{}, "ff"},
      // Protocol version 6 (docs/protocol.md, "Version 6: CAN FD"), computed independently with
      // Python's struct.pack('>BdiBB', 11, ts, id, len, flags) + data.
      {"BusRequest(6, 0)", BusRequest{6, 0}, "01 06 00 00 00 00"},
      {"CanFdMessage std 0x123 12 bytes BRS",
       FdMsg(Frame(0x123, Bytes(12, 0, 1), kCanFlagBrs), 1470925506.0621243),
       "0b 41 d5 eb 22 b0 83 f9 d8 00 00 01 23 0c 18 00 01 02 03 04 05 06 07 08 09 0a 0b"},
      {"CanFdMessage ext 64 bytes BRS ESI",
       FdMsg(Frame(0x1ABCDEF0, Bytes(64, 0xaa, 0), kCanFlagExtended | kCanFlagBrs | kCanFlagEsi),
             0),
       "0b 00 00 00 00 00 00 00 00 1a bc de f0 40 39 " + Repeat("aa", 64)},
      {"CanFdMessage std 0x7FF empty", FdMsg(Frame(0x7FF, {}), 0),
       "0b 00 00 00 00 00 00 00 00 00 00 07 ff 00 08"},
      {"CanFdMessage 5 bytes no BRS", FdMsg(Frame(0x1, {1, 2, 3, 4, 5}), 0),
       "0b 00 00 00 00 00 00 00 00 00 00 00 01 05 08 01 02 03 04 05"},
      {"CanFdMessage error flag", FdMsg(Frame(0x1, Bytes(8, 0, 0), kCanFlagError), 0),
       "0b 00 00 00 00 00 00 00 00 00 00 00 01 08 0c 00 00 00 00 00 00 00 00"},
      {"PeriodicFdMessageStart std 16 bytes BRS",
       PeriodicFd(10, 0, Frame(0x123, Bytes(16, 0, 1), kCanFlagBrs)),
       "0c 00 00 00 0a 00 00 00 00 00 00 01 23 10 18 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e "
       "0f"},
      {"PeriodicFdMessageStart ext 8 bytes",
       PeriodicFd(100, 10000, Frame(0xABCDEF, Bytes(8, 1, 1), kCanFlagExtended)),
       "0c 00 00 00 64 00 00 27 10 00 ab cd ef 08 09 01 02 03 04 05 06 07 08"},
      // canserver's lease events (docs/protocol.md, "Leases"), computed with Python's
      // struct.pack('>BiB', 13, seconds, len) + token and struct.pack('>BBIB', 14, …).
      {"LeaseRequest take 30 s", LeaseRequest{30, ""}, "0d 00 00 00 1e 00"},
      {"LeaseRequest join", LeaseRequest{0, "0123456789abcdef0123456789abcdef"},
       "0d 00 00 00 00 20 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 30 31 32 33 34 35 36 "
       "37 38 39 61 62 63 64 65 66"},
      {"LeaseResponse granted",
       LeaseResponse{true, 30000, "0123456789abcdef0123456789abcdef",
                     "session 7 (127.0.0.1:41234)"},
       "0e 01 00 00 75 30 20 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 30 31 32 33 34 35 36 "
       "37 38 39 61 62 63 64 65 66 1b 73 65 73 73 69 6f 6e 20 37 20 28 31 32 37 2e 30 2e 30 2e 31 "
       "3a 34 31 32 33 34 29"},
      {"LeaseResponse refused",
       LeaseResponse{false, 23000, "", "leased by session 7 (10.0.0.5:41234) for 23 s more"},
       "0e 00 00 00 59 d8 00 32 6c 65 61 73 65 64 20 62 79 20 73 65 73 73 69 6f 6e 20 37 20 28 31 "
       "30 2e 30 2e 30 2e 35 3a 34 31 32 33 34 29 20 66 6f 72 20 32 33 20 73 20 6d 6f 72 65"},
      // canserver's resume events (docs/protocol.md, "Resuming a session"), computed with
      // Python's struct.pack('>BB', 15, len) + token + struct.pack('>Q', frames) and
      // struct.pack('>BBIIQQB', 16, status, grace, away, lost, from_client, len) + token + text.
      {"ResumeRequest ask for a token", ResumeRequest{"", 0}, "0f 00 00 00 00 00 00 00 00 00"},
      {"ResumeRequest resume", ResumeRequest{"0123456789abcdef0123456789abcdef", 5000},
       "0f 20 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 30 31 32 33 34 35 36 37 38 39 61 "
       "62 63 64 65 66 00 00 00 00 00 00 13 88"},
      {"ResumeResponse resumed",
       ResumeResponse{ResumeStatus::kResumed, 10000, 2000, 0, 120,
                      "0123456789abcdef0123456789abcdef", "resumed after 2.0 s: 0 frames lost"},
       "10 02 00 00 27 10 00 00 07 d0 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 78 20 30 31 32 "
       "33 34 35 36 37 38 39 61 62 63 64 65 66 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 22 "
       "72 65 73 75 6d 65 64 20 61 66 74 65 72 20 32 2e 30 20 73 3a 20 30 20 66 72 61 6d 65 73 20 "
       "6c 6f 73 74"},
      {"ResumeResponse refused",
       ResumeResponse{ResumeStatus::kRefused, 0, 0, 0, 0, "", "no session for this token"},
       "10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 19 6e 6f "
       "20 73 65 73 73 69 6f 6e 20 66 6f 72 20 74 68 69 73 20 74 6f 6b 65 6e"},
  };
  return *vectors;
}

class GoldenTest : public ::testing::TestWithParam<size_t> {};

TEST_P(GoldenTest, EncodesToTheOriginalBytes) {
  const Golden& g = GoldenVectors()[GetParam()];
  std::string out;
  ASSERT_TRUE(Encode(g.event, &out).ok()) << g.name;
  EXPECT_EQ(absl::BytesToHexString(out), absl::BytesToHexString(Hex(g.hex))) << g.name;
}

TEST_P(GoldenTest, DecodesToTheSameEvent) {
  const Golden& g = GoldenVectors()[GetParam()];
  const std::string bytes = Hex(g.hex);
  Event decoded;
  absl::StatusOr<size_t> used = DecodeEvent(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), &decoded);
  ASSERT_TRUE(used.ok()) << g.name << ": " << used.status();
  EXPECT_EQ(*used, bytes.size()) << g.name;
  EXPECT_TRUE(decoded == g.event) << g.name << " decoded as " << EventName(decoded);
}

INSTANTIATE_TEST_SUITE_P(ProtocolReference, GoldenTest,
                         ::testing::Range<size_t>(0, GoldenVectors().size()));

TEST(V5CodecTest, LeaseEventsWithBadFieldsAreProtocolErrors) {
  Event e;
  const auto decode = [&](const std::string& hex) {
    const std::string bytes = Hex(hex);
    return DecodeEvent(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), &e);
  };
  EXPECT_FALSE(decode("0d ff ff ff ff 00").ok()) << "negative seconds";
  EXPECT_FALSE(decode("0d 00 00 00 01 02 41 42").ok()) << "a token that is not 32 hex digits";
  EXPECT_FALSE(decode("0e 02 00 00 00 00 00 00").ok()) << "granted byte 2";
  // Incomplete: the decoder waits for the rest instead of failing.
  EXPECT_EQ(*decode("0e 01 00 00 00 00 02 41"), 0u);
  EXPECT_EQ(*decode("0e 01 00 00 00 00 00"), 0u);
}

TEST(V5CodecTest, ResumeEventsWithBadFieldsAreProtocolErrors) {
  Event e;
  const auto decode = [&](const std::string& hex) {
    const std::string bytes = Hex(hex);
    return DecodeEvent(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), &e);
  };
  EXPECT_FALSE(decode("0f 02 41 42 00 00 00 00 00 00 00 00").ok()) << "a token of 2 digits";
  EXPECT_FALSE(decode("10 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
                      "00 00 00 00 00")
                   .ok())
      << "status 3";
  // Incomplete: the decoder waits for the rest.
  EXPECT_EQ(*decode("0f 00 00 00 00 00 00 00 00"), 0u);
  EXPECT_EQ(*decode("10 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
                    "00 00 00"),
            0u);
}

TEST(V5CodecTest, TimestampSurvivesTheRoundTripExactly) {
  const double seconds = 1470925506.0621243;
  EXPECT_EQ(NanosToSeconds(SecondsToNanos(seconds)), seconds);
  EXPECT_EQ(SecondsToNanos(0.5), 500'000'000);
  EXPECT_EQ(NanosToSeconds(1'500'000'000), 1.5);
}

TEST(V5CodecTest, EncodeRejectsIdsWiderThan29Bits) {
  std::string out;
  absl::Status s = Encode(CanMessage{Frame(0x20000000, {}, kCanFlagExtended)}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("wider than 29 bits"));
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(Encode(CanMessage{Frame(0x800, {})}, &out).ok()) << "standard id over 11 bits";
  EXPECT_FALSE(Encode(PeriodicMessageStop{0x80000000u}, &out).ok());
}

TEST(V5CodecTest, EncodeRejectsFdFramesAndLongDlc) {
  std::string out;
  CanFrame fd = Frame(0x10, {1}, kCanFlagFd);
  EXPECT_FALSE(Encode(CanMessage{fd}, &out).ok());
  uint8_t buf[kCanMessageSize];
  EXPECT_FALSE(EncodeCanMessage(fd, buf));
  EXPECT_FALSE(Encode(CanMessage{Frame(0x10, {}, 0, 9)}, &out).ok());
}

TEST(V5CodecTest, EncodeRejectsWhatCanFdMessageCannotCarry) {
  std::string out;
  CanFrame classic = Frame(0x123, {1});
  EXPECT_FALSE(Encode(CanFdMessage{classic}, &out).ok()) << "a classic frame is a CanMessage";
  CanFrame fd = Frame(0x123, Bytes(9, 0, 1), kCanFlagFd);
  EXPECT_THAT(std::string(Encode(CanFdMessage{fd}, &out).message()),
              HasSubstr("length 9 is not a CAN FD length"));
  fd = Frame(0x123, {}, kCanFlagFd | kCanFlagRemote);
  EXPECT_FALSE(Encode(CanFdMessage{fd}, &out).ok());
  EXPECT_FALSE(Encode(PeriodicFdMessageStart{10, 0, fd}, &out).ok());
  EXPECT_TRUE(out.empty());
  uint8_t buf[kMaxCanFdMessageSize];
  EXPECT_EQ(EncodeFrameV6(fd, buf), 0u);
  EXPECT_EQ(EncodeFrameV6(classic, buf), kCanMessageSize) << "classic frames stay CanMessage in v6";
  EXPECT_EQ(buf[0], 3);
}

TEST(V5CodecTest, EveryFdLengthAndNoOther) {
  std::vector<int> lengths;
  for (int len = 0; len < 256; ++len) {
    if (IsCanFdLength(static_cast<uint8_t>(len))) lengths.push_back(len);
  }
  EXPECT_EQ(lengths, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64}));
}

TEST(V5CodecTest, LongStringsAreCutAtAUtf8Boundary) {
  // 127 two-byte characters (254 bytes) then one more: byte 255 would split it.
  std::string text;
  for (int i = 0; i < 128; ++i) text += "\xc3\xa9";  // é
  std::string out;
  ASSERT_TRUE(Encode(RemoteException{text}, &out).ok());
  ASSERT_EQ(static_cast<uint8_t>(out[1]), 254);
  EXPECT_EQ(out.size(), 2u + 254u);
  EXPECT_EQ(out.substr(2), text.substr(0, 254));

  std::string ascii(300, 'x');
  out.clear();
  ASSERT_TRUE(Encode(BusResponse{ascii}, &out).ok());
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 255);
  EXPECT_EQ(TruncateUtf8("\xe2\x82\xac", 2), "");  // € cannot be cut
}

TEST(V5CodecTest, FilterConfigWith255FiltersIsTheLargestEvent) {
  FilterConfig config;
  for (uint32_t i = 0; i < 255; ++i) config.filters.push_back({i, 0x7FF, std::nullopt});
  std::string out;
  ASSERT_TRUE(Encode(config, &out).ok());
  EXPECT_EQ(out.size(), kMaxEventSize);
  config.filters.push_back({0, 0, std::nullopt});
  EXPECT_FALSE(Encode(config, &out).ok());
}

struct BadInput {
  const char* hex;
  const char* message;
};

class DecodeErrorTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(DecodeErrorTest, NamesTheProblem) {
  const std::string bytes = Hex(GetParam().hex);
  Event e;
  absl::StatusOr<size_t> used = DecodeEvent(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), &e);
  ASSERT_FALSE(used.ok()) << GetParam().hex;
  EXPECT_EQ(used.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(used.status().message()), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, DecodeErrorTest,
    ::testing::Values(
        BadInput{"00", "unknown event id 0"}, BadInput{"09 00 00 00 00", "unknown event id 9"},
        BadInput{"11", "unknown event id 17 (0x11)"}, BadInput{"fe", "unknown event id 254"},
        BadInput{"01 05 ff ff ff ff", "bitrate -1 is negative"},
        // CanMessage: id with bit 31 set, standard id over 11 bits, dlc 9, unknown flag bits.
        BadInput{"03 00 00 00 00 00 00 00 00 80 00 00 00 00 01 00 00 00 00 00 00 00 00",
                 "wider than 29 bits"},
        BadInput{"03 00 00 00 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00",
                 "wider than 11 bits"},
        BadInput{"03 00 00 00 00 00 00 00 00 00 00 01 00 09 00 00 00 00 00 00 00 00 00",
                 "dlc 9 is over 8"},
        BadInput{"03 00 00 00 00 00 00 00 00 00 00 01 00 00 08 00 00 00 00 00 00 00 00",
                 "unknown bits"},
        // PeriodicMessageStart: zero period, negative duration, extended byte 2.
        BadInput{"07 00 00 00 00 00 00 00 00 00 00 01 23 00 00 00 00 00 00 00 00 00 00",
                 "period 0 ms is not positive"},
        BadInput{"07 00 00 00 0a ff ff ff ff 00 00 01 23 00 00 00 00 00 00 00 00 00 00",
                 "duration -1 ms is negative"},
        BadInput{"07 00 00 00 0a 00 00 00 00 00 00 01 23 00 02 00 00 00 00 00 00 00 00",
                 "extended byte 2"},
        BadInput{"08 20 00 00 00", "wider than 29 bits"},
        // CanFdMessage: no FD length (known from 14 bytes on), RTR, FD bit missing, unknown bits,
        // standard id over 11 bits, extended id over 29 bits.
        BadInput{"0b 00 00 00 00 00 00 00 00 00 00 01 23 09", "length 9 is not a CAN FD length"},
        BadInput{"0b 00 00 00 00 00 00 00 00 00 00 01 23 41", "length 65 is not a CAN FD length"},
        BadInput{"0b 00 00 00 00 00 00 00 00 00 00 01 23 00 0a", "no remote frames"},
        BadInput{"0b 00 00 00 00 00 00 00 00 00 00 01 23 00 00", "lack the FD bit"},
        BadInput{"0b 00 00 00 00 00 00 00 00 00 00 01 23 00 48", "unknown bits"},
        BadInput{"0b 00 00 00 00 00 00 00 00 00 00 08 00 00 08", "wider than 11 bits"},
        BadInput{"0b 00 00 00 00 00 00 00 00 20 00 00 00 00 09", "wider than 29 bits"},
        // PeriodicFdMessageStart: length, zero period, negative duration, error flag, RTR.
        BadInput{"0c 00 00 00 0a 00 00 00 00 00 00 01 23 0d", "length 13 is not a CAN FD length"},
        BadInput{"0c 00 00 00 00 00 00 00 00 00 00 01 23 00 08", "period 0 ms is not positive"},
        BadInput{"0c 00 00 00 0a ff ff ff ff 00 00 01 23 00 08", "duration -1 ms is negative"},
        BadInput{"0c 00 00 00 0a 00 00 00 00 00 00 01 23 00 0c", "unknown bits"},
        BadInput{"0c 00 00 00 0a 00 00 00 00 00 00 01 23 00 0a", "no remote frames"}));

std::vector<std::string> AllGoldenStreamsConcatenated() {
  std::string stream;
  for (const Golden& g : GoldenVectors()) {
    if (!std::holds_alternative<ConnectionClosed>(g.event)) stream += Hex(g.hex);
  }
  return {stream};
}

std::vector<Event> DecodeAll(StreamDecoder& dec) {
  std::vector<Event> events;
  while (true) {
    auto next = dec.Next();
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !next->has_value()) break;
    events.push_back(**next);
  }
  return events;
}

std::vector<Event> ExpectedStream() {
  std::vector<Event> events;
  for (const Golden& g : GoldenVectors()) {
    if (!std::holds_alternative<ConnectionClosed>(g.event)) events.push_back(g.event);
  }
  return events;
}

TEST(StreamDecoderTest, ManyEventsInOneRead) {
  StreamDecoder dec;
  dec.Append(AllGoldenStreamsConcatenated()[0]);
  EXPECT_TRUE(DecodeAll(dec) == ExpectedStream());
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(StreamDecoderTest, ByteByByte) {
  const std::string stream = AllGoldenStreamsConcatenated()[0];
  StreamDecoder dec;
  std::vector<Event> events;
  for (char c : stream) {
    dec.Append(absl::string_view(&c, 1));
    for (Event& e : DecodeAll(dec)) events.push_back(std::move(e));
  }
  EXPECT_TRUE(events == ExpectedStream());
}

TEST(StreamDecoderTest, SeededRandomSplits) {
  const std::string stream = AllGoldenStreamsConcatenated()[0];
  const uint32_t base_seed = std::random_device{}();
  for (uint32_t round = 0; round < 200; ++round) {
    const uint32_t seed = base_seed + round;
    std::mt19937 rng(seed);
    StreamDecoder dec;
    std::vector<Event> events;
    size_t pos = 0;
    while (pos < stream.size()) {
      const size_t n = std::uniform_int_distribution<size_t>(1, 40)(rng);
      dec.Append(absl::string_view(stream).substr(pos, n));
      pos += n;
      for (Event& e : DecodeAll(dec)) events.push_back(std::move(e));
    }
    ASSERT_TRUE(events == ExpectedStream()) << "seed " << seed;
  }
  std::printf("StreamDecoderTest.SeededRandomSplits: seeds %u..%u\n", base_seed, base_seed + 199);
}

TEST(StreamDecoderTest, AnErrorIsStickyAndPartialEventsAreHeldBack) {
  StreamDecoder dec;
  dec.Append(Hex("04 03 00 00"));
  auto first = dec.Next();
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_TRUE(std::holds_alternative<TransmitSuccess>(**first));
  auto partial = dec.Next();
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->has_value());
  EXPECT_EQ(dec.buffered(), 3u);

  StreamDecoder bad;
  bad.Append(Hex("05 63 04"));
  EXPECT_TRUE(bad.Next().ok());
  EXPECT_FALSE(bad.Next().ok());
  EXPECT_FALSE(bad.Next().ok()) << "the stream stays broken after an unknown id";
}

}  // namespace
}  // namespace canserver::v5

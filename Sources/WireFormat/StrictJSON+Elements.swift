extension StrictJSON {
    /// The elements of a top-level JSON array, parsed one at a time, with the rules of
    /// `StrictJSON.parse`.
    ///
    /// For the broker's big listings (thousands of vhosts, users, permissions): only the element
    /// in hand exists as a `JSONValue`, never a tree of the whole answer, so a listing costs its
    /// bytes and what the caller keeps of each element. Decoding the whole answer first (through
    /// Foundation's decoder) held about ten times the answer's size at once.
    public struct Elements {
        private var parser: Parser
        private var state = State.start

        private enum State { case start, inside, done }

        public init(_ bytes: [UInt8]) {
            parser = Parser(bytes: bytes)
        }

        /// The next element; nil after the last one, once the array has been closed and nothing
        /// but whitespace follows it. Throws where `StrictJSON.parse` would.
        public mutating func next() throws(Failure) -> JSONValue? {
            switch state {
            case .done:
                return nil
            case .start:
                parser.skipWhitespace()
                guard parser.peek == UInt8(ascii: "[") else { throw parser.fail("expected an array") }
                parser.index += 1
                parser.skipWhitespace()
                if parser.peek == UInt8(ascii: "]") {
                    parser.index += 1
                    try finish()
                    return nil
                }
            case .inside:
                parser.skipWhitespace()
                switch parser.peek {
                case UInt8(ascii: ","):
                    parser.index += 1
                case UInt8(ascii: "]"):
                    parser.index += 1
                    try finish()
                    return nil
                default:
                    throw parser.fail("expected ',' or ']' in an array")
                }
            }
            state = .inside
            parser.skipWhitespace()
            // Depth 1: an element sits inside the array, as in `parse`.
            return try parser.value(depth: 1)
        }

        private mutating func finish() throws(Failure) {
            parser.skipWhitespace()
            guard parser.index == parser.bytes.count else { throw parser.fail("unexpected data after the JSON value") }
            state = .done
        }
    }
}

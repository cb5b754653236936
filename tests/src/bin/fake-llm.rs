//! The bundled fake provider as a program, for trying the gateway without
//! any API key: `fake-llm [PORT]` (default 8000), on 127.0.0.1.

fn main() {
    let port = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8000);
    let fake = ai_gateway_tests::fake::FakeProvider::start_on(port);
    eprintln!("fake-llm: OpenAI-, Azure-, Mistral- and Ollama-style answers on http://127.0.0.1:{}", fake.port);
    loop {
        std::thread::park();
    }
}

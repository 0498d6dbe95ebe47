//! QR codes of client configs, for the WireGuard mobile apps' "scan from QR code".

use qrcode::render::unicode::Dense1x2;
use qrcode::{Color, EcLevel, QrCode};

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text is too long for a QR code ({bytes} bytes)")]
    TooLong { bytes: usize },
    #[error("cannot encode the PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// Pixels per QR module in the PNG: large enough for a phone camera across a desk.
pub const PNG_MODULE_PIXELS: u32 = 8;
/// Blank modules around the code, as the QR standard asks.
pub const QUIET_ZONE: u32 = 4;

/// The QR code as unicode half blocks (two rows per line) for a terminal. The
/// colours are swapped so that, on the usual light-on-dark terminal, the code reads
/// as dark-on-light the way scanners expect.
pub fn qr_terminal(text: &str) -> Result<String, QrError> {
    let code = encode(text)?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The QR code as an 8-bit greyscale PNG.
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = encode(text)?;
    let modules = code.width() as u32;
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_MODULE_PIXELS;
    let mut pixels = vec![255u8; (side * side) as usize];
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (index as u32 % modules, index as u32 / modules);
        for dy in 0..PNG_MODULE_PIXELS {
            let y = (my + QUIET_ZONE) * PNG_MODULE_PIXELS + dy;
            let x = (mx + QUIET_ZONE) * PNG_MODULE_PIXELS;
            let row = (y * side + x) as usize;
            pixels[row..row + PNG_MODULE_PIXELS as usize].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

fn encode(text: &str) -> Result<QrCode, QrError> {
    // M recovers ~15% damage and still fits a config with PSK in a version ~10 code.
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|_| QrError::TooLong { bytes: text.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like a config, but with no key material.
    const SAMPLE: &str = "[Interface]\nPrivateKey = (the device's own 44-character key)\n";

    fn decode_grey(
        width: usize,
        height: usize,
        pixel: impl FnMut(usize, usize) -> u8,
    ) -> Vec<String> {
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
        image
            .detect_grids()
            .iter()
            .map(|grid| grid.decode().expect("decodes").1)
            .collect()
    }

    #[test]
    fn png_decodes_back_to_the_text() {
        let bytes = qr_png(SAMPLE).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        let width = info.width as usize;
        let decoded = decode_grey(width, info.height as usize, |x, y| buf[y * width + x]);
        assert_eq!(decoded, vec![SAMPLE.to_string()]);
    }

    #[test]
    fn terminal_blocks_decode_back_to_the_text() {
        let art = qr_terminal(SAMPLE).unwrap();
        // Each character is two pixels stacked; the terminal's inversion is undone here.
        let lines: Vec<Vec<char>> = art.lines().map(|l| l.chars().collect()).collect();
        let width = lines[0].len();
        let scale = 4;
        let decoded = decode_grey(width * scale, lines.len() * 2 * scale, |x, y| {
            let c = lines[y / scale / 2].get(x / scale).copied().unwrap_or(' ');
            let top = y / scale % 2 == 0;
            let lit = match c {
                '█' => true,
                '▀' => top,
                '▄' => !top,
                _ => false,
            };
            // A lit cell is a light module.
            if lit { 255 } else { 0 }
        });
        assert_eq!(decoded, vec![SAMPLE.to_string()]);
    }

    #[test]
    fn oversized_text_is_an_error_not_a_panic() {
        assert!(matches!(
            qr_png(&"x".repeat(5000)),
            Err(QrError::TooLong { .. })
        ));
    }
}

defmodule PyBridge.MediaSupport do
  @moduledoc false
  # Images and audio for the vision and audio tests, made without Nx or any
  # codec library: tensors from formulas, and files in formats simple enough
  # to write by hand (PPM/PGM images, 16-bit PCM WAV). tests/reference.py
  # reads the same bytes back for the reference values.

  alias PyBridge.Tensor

  @doc "A {height, width, channels} u8 image: a gradient with pseudo-random speckle."
  def image(height, width, channels, seed) do
    data =
      for y <- 0..(height - 1), x <- 0..(width - 1), c <- 0..(channels - 1), into: <<>> do
        base =
          [x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height), 200] |> Enum.at(c)

        speckle = rem(x * 7919 + y * 104_729 + c * 1_299_709 + seed * 15_485_863, 61) - 30
        <<base |> round() |> Kernel.+(speckle) |> max(0) |> min(255)>>
      end

    Tensor.new(data, {:u, 8}, {height, width, channels})
  end

  @doc "Writes the image's bytes to `dir` and returns reference.py's `raw:HxWxC:FILE` argument."
  def raw_image_arg(%Tensor{shape: {h, w, c}} = image, dir, name) do
    path = Path.join(dir, name <> ".bin")
    File.write!(path, image.data)
    "raw:#{h}x#{w}x#{c}:#{path}"
  end

  @doc "Writes a 1- or 3-channel image as a binary PGM or PPM file."
  def write_netpbm!(%Tensor{shape: {h, w, c}, data: data}, path) when c in [1, 3] do
    magic = if c == 1, do: "P5", else: "P6"
    File.write!(path, ["#{magic}\n#{w} #{h}\n255\n", data])
    path
  end

  @doc "`seconds` of 16 kHz f32 audio: a tone gliding from `hz`, slowly pulsing."
  def tone(seconds, hz) do
    rate = 16_000

    data =
      for i <- 0..(round(seconds * rate) - 1), into: <<>> do
        t = i / rate
        amplitude = 0.3 + 0.2 * :math.sin(2 * :math.pi() * 0.5 * t)
        <<amplitude * :math.sin(2 * :math.pi() * (hz + 80 * t) * t)::float-32-little>>
      end

    Tensor.new(data, {:f, 32}, {div(byte_size(data), 4)})
  end

  @doc "Writes f32 samples as raw little-endian bytes; returns reference.py's `raw:FILE` argument."
  def raw_audio_arg(%Tensor{data: data}, dir, name) do
    path = Path.join(dir, name <> ".f32")
    File.write!(path, data)
    "raw:" <> path
  end

  @doc "Writes f32 samples as a mono 16-bit PCM WAV file at 16 kHz."
  def write_wav!(%Tensor{data: data}, path) do
    pcm =
      for <<x::float-32-little <- data>>, into: <<>> do
        <<round(max(min(x, 1.0), -1.0) * 32_767)::signed-little-16>>
      end

    rate = 16_000

    header =
      <<"RIFF", 36 + byte_size(pcm)::little-32, "WAVE", "fmt ", 16::little-32, 1::little-16,
        1::little-16, rate::little-32, rate * 2::little-32, 2::little-16, 16::little-16, "data",
        byte_size(pcm)::little-32>>

    File.write!(path, [header, pcm])
    path
  end

  @doc "Splits a 1-D tensor into pieces of `size` samples (the last may be shorter)."
  def pieces(%Tensor{data: data, type: {_, bits} = type}, size) do
    bytes = div(size * bits, 8)

    for <<chunk::binary-size(bytes) <- data>>, into: [] do
      Tensor.new(chunk, type, {size})
    end ++ tail(data, bytes, type)
  end

  defp tail(data, bytes, {_, bits} = type) do
    case rem(byte_size(data), bytes) do
      0 ->
        []

      n ->
        chunk = binary_part(data, byte_size(data) - n, n)
        [Tensor.new(chunk, type, {div(n * 8, bits)})]
    end
  end
end

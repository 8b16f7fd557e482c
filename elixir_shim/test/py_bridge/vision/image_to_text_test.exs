defmodule PyBridge.Vision.ImageToTextTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport
  import PyBridge.MediaSupport

  @moduletag :model

  setup_all do
    dir = tiny_model("blip_image_captioning")
    repo = {:local, dir}

    %{
      model_info: model_info,
      featurizer: featurizer,
      tokenizer: tokenizer,
      generation_config: generation_config
    } = load_generating(repo, max_new_tokens: 8)

    tmp = scratch_dir("blip")

    gradient = image(48, 64, 3, 7)
    grey = image(40, 40, 1, 8)
    ppm = write_netpbm!(image(32, 32, 3, 9), Path.join(tmp, "small.ppm"))
    args = [raw_image_arg(gradient, tmp, "gradient"), raw_image_arg(grey, tmp, "grey"), ppm]

    # BlipForConditionalGeneration.generate, greedy, 8 new tokens, each image alone.
    expected =
      Task.async(fn ->
        reference(["image_to_text", "--model", dir, "--max-new-tokens", "8" | args])
      end)

    name = __MODULE__.Serving

    serving = PyBridge.Vision.image_to_text(model_info, featurizer, tokenizer, generation_config)

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    %{
      name: name,
      model_info: model_info,
      featurizer: featurizer,
      tokenizer: tokenizer,
      generation_config: generation_config,
      inputs: [gradient, %{image: grey, seed: 3}, {:file, ppm}],
      expected: Task.await(expected, :infinity)
    }
  end

  describe "image_to_text/5" do
    test "captions are transformers' greedy captions", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, ctx.inputs)
      assert results == Enum.map(ctx.expected, &%{results: [%{text: &1}]})
      # The random model still looks at the image.
      assert length(Enum.uniq(ctx.expected)) > 1
    end

    test "a single input gives one map", ctx do
      [_, map | _] = ctx.inputs
      [_, caption | _] = ctx.expected
      assert PyBridge.Serving.batched_run(ctx.name, map) == %{results: [%{text: caption}]}
    end

    test "bad inputs raise in the caller", ctx do
      assert_raise ArgumentError,
                   ~r/^invalid input, expected the input map to have :image key/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, %{picture: hd(ctx.inputs)})
                   end

      assert_raise ArgumentError,
                   ~r/^invalid input in the batch, expected :seed to be an integer/,
                   fn ->
                     PyBridge.Serving.batched_run(ctx.name, [
                       %{image: hd(ctx.inputs), seed: "one"}
                     ])
                   end
    end

    test "options are checked as Bumblebee checks them", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:stream\]/, fn ->
        PyBridge.Vision.image_to_text(
          ctx.model_info,
          ctx.featurizer,
          ctx.tokenizer,
          ctx.generation_config,
          stream: true
        )
      end
    end
  end
end

defmodule PyBridge.Vision.ImageEmbeddingTest do
  use ExUnit.Case, async: false

  import PyBridge.TestSupport
  import PyBridge.MediaSupport

  @moduletag :model

  setup_all do
    # CLIPVisionModelWithProjection: Bumblebee's ClipVision :for_embedding.
    dir = tiny_model("clip_vision_embedding")
    {:ok, model_info} = PyBridge.load_model({:local, dir})
    {:ok, featurizer} = PyBridge.load_featurizer({:local, dir})
    tmp = Path.join(System.tmp_dir!(), "pybridge-clip-#{System.unique_integer([:positive])}")
    File.mkdir_p!(tmp)
    on_exit(fn -> File.rm_rf!(tmp) end)

    wide = image(30, 70, 3, 4)
    rgba = image(50, 40, 4, 5)
    ppm = write_netpbm!(image(33, 33, 3, 6), Path.join(tmp, "square.ppm"))
    inputs = [wide, rgba, {:file, ppm}]
    args = [raw_image_arg(wide, tmp, "wide"), raw_image_arg(rgba, tmp, "rgba"), ppm]

    # transformers' CLIP image processor (resize, center crop) and the
    # projected image_embeds, L2-normalized, each image alone.
    expected =
      Task.async(fn ->
        reference([
          "image_embedding",
          "--model",
          dir,
          "--output",
          "image_embeds",
          "--l2-norm" | args
        ])
      end)

    name = __MODULE__.Serving

    serving =
      PyBridge.Vision.image_embedding(model_info, featurizer,
        output_attribute: :embedding,
        embedding_processor: :l2_norm
      )

    start_supervised!(
      {PyBridge.Serving, serving: serving, name: name, batch_size: 4, batch_timeout: 20}
    )

    %{
      name: name,
      model_info: model_info,
      featurizer: featurizer,
      inputs: inputs,
      expected: Task.await(expected, :infinity)
    }
  end

  describe "image_embedding/3" do
    test "embeddings are transformers' projected, normalized image embeddings", ctx do
      results = PyBridge.Serving.batched_run(ctx.name, ctx.inputs)

      for {%{embedding: embedding}, expected} <- Enum.zip(results, ctx.expected) do
        assert PyBridge.Tensor.shape(embedding) == {16}
        assert PyBridge.Tensor.type(embedding) == {:f, 32}

        for {ours, theirs} <- Enum.zip(PyBridge.Tensor.to_list(embedding), expected) do
          assert_in_delta ours, theirs, 1.0e-5
        end
      end
    end

    test "different images embed differently", ctx do
      [a, b, _] = PyBridge.Serving.batched_run(ctx.name, ctx.inputs)

      assert cosine(PyBridge.Tensor.to_list(a.embedding), PyBridge.Tensor.to_list(b.embedding)) <
               0.999
    end

    test "a single image gives one map", ctx do
      assert %{embedding: %PyBridge.Tensor{}} =
               PyBridge.Serving.batched_run(ctx.name, hd(ctx.inputs))
    end
  end

  describe "options" do
    test "there is no :output_pool, as in Bumblebee", ctx do
      assert_raise ArgumentError, ~r/unknown keys \[:output_pool\]/, fn ->
        PyBridge.Vision.image_embedding(ctx.model_info, ctx.featurizer, output_pool: :mean_pooling)
      end
    end

    test "a bad embedding processor or output attribute", ctx do
      assert_raise ArgumentError,
                   ~r/expected :embedding_processor to be one of nil, :l2_norm/,
                   fn ->
                     PyBridge.Vision.image_embedding(ctx.model_info, ctx.featurizer,
                       embedding_processor: :norm
                     )
                   end

      assert_raise ArgumentError, ~r/expected :output_attribute to be an atom/, fn ->
        PyBridge.Vision.image_embedding(ctx.model_info, ctx.featurizer,
          output_attribute: "embedding"
        )
      end
    end

    test ":compile takes a batch size only", ctx do
      serving =
        PyBridge.Vision.image_embedding(ctx.model_info, ctx.featurizer, compile: [batch_size: 3])

      assert serving.batch_size == 3

      assert_raise ArgumentError, ~r/missing keys \[:batch_size\]/, fn ->
        PyBridge.Vision.image_embedding(ctx.model_info, ctx.featurizer, compile: [])
      end
    end
  end
end

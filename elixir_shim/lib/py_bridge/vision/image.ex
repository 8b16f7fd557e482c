defmodule PyBridge.Vision.Image do
  @moduledoc false
  # Validation of image inputs in the caller, shared by the vision servings.
  # An image is an integer {height, width, channels} tensor (Nx or
  # PyBridge.Tensor) with 1 to 4 channels, as Bumblebee accepts, or
  # {:file, path}, which the worker decodes with Pillow.

  @doc false
  @spec validate(term()) :: {:ok, term()} | {:error, String.t()}
  def validate({:file, path}), do: validate_file(path)

  def validate(%{__struct__: struct, shape: shape, type: type} = tensor)
      when struct in [Nx.Tensor, PyBridge.Tensor] do
    cond do
      not match?({_, _, channels} when channels in 1..4, shape) ->
        {:error,
         "expected an image tensor of shape {height, width, channels} with 1 to 4 channels, " <>
           "got a tensor of shape #{inspect(shape)}"}

      # Bumblebee's featurizers refuse two channels (grey + alpha) in the caller too.
      elem(shape, 2) == 2 ->
        {:error, "expected image with 3 channels, but got 2 and no automatic conversion applies"}

      not match?({kind, _} when kind in [:u, :s], type) ->
        {:error, "expected an image tensor of an integer type, got: #{inspect(type)}"}

      true ->
        {:ok, tensor}
    end
  end

  def validate(other), do: {:error, "expected an image, got: #{inspect(other, limit: 10)}"}

  @doc false
  # `{:file, path}` with an existing file, the path made absolute.
  @spec validate_file(term()) :: {:ok, {:file, String.t()}} | {:error, String.t()}
  def validate_file(path) when is_binary(path) do
    if File.regular?(path),
      do: {:ok, {:file, Path.expand(path)}},
      else: {:error, "no file found at #{path}"}
  end

  def validate_file(other),
    do: {:error, "expected {:file, path} to hold a string path, got: #{inspect(other)}"}
end

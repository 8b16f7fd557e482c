defmodule PyBridge.CommandTest do
  # Changes PATH, which the whole VM shares.
  use ExUnit.Case, async: false

  @moduletag :tmp_dir

  setup %{tmp_dir: tmp_dir} do
    path = System.get_env("PATH")
    on_exit(fn -> System.put_env("PATH", path) end)

    # iproute2's bridge is an ELF binary; ours is a Python console script.
    elf_dir = Path.join(tmp_dir, "sbin")
    py_dir = Path.join(tmp_dir, "venv/bin")
    write_executable(Path.join(elf_dir, "bridge"), <<0x7F, "ELF", 2, 1, 1, 0::64>>)

    write_executable(
      Path.join(py_dir, "bridge"),
      "#!/opt/venv/bin/python3\nfrom py_bridge.cli import main\n"
    )

    %{elf_dir: elf_dir, py_dir: py_dir, empty_dir: Path.join(tmp_dir, "empty")}
  end

  describe "resolve/1 looking up `bridge` on the PATH" do
    test "skips another program named bridge for PyBridge's", ctx do
      System.put_env("PATH", "#{ctx.elf_dir}:#{ctx.py_dir}")
      assert {:ok, {path, []}} = PyBridge.Command.resolve("bridge")
      assert path == Path.join(ctx.py_dir, "bridge")
    end

    test "explains a clash with another program named bridge", ctx do
      System.put_env("PATH", ctx.elf_dir)

      assert {:error, %PyBridge.Error{type: :model_load_failed, message: message}} =
               PyBridge.Command.resolve("bridge")

      assert message =~ "is not PyBridge's worker"
      assert message =~ Path.join(ctx.elf_dir, "bridge")
      assert message =~ "bridge_command"
    end

    test "says how to install it when there is none", ctx do
      System.put_env("PATH", ctx.empty_dir)
      assert {:error, %PyBridge.Error{message: message}} = PyBridge.Command.resolve("bridge")
      assert message =~ "pip install py-bridge"
    end

    test "takes an explicit path as given", ctx do
      elf = Path.join(ctx.elf_dir, "bridge")
      assert {:ok, {^elf, []}} = PyBridge.Command.resolve(elf)
    end
  end

  defp write_executable(path, contents) do
    File.mkdir_p!(Path.dirname(path))
    File.write!(path, contents)
    File.chmod!(path, 0o755)
  end
end

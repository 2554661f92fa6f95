from nurture_lake.jobs.simulate import main

if __name__ == "__main__":
    main()
